<?php

namespace Tests\Support;

use RuntimeException;

/**
 * A MariaDB server of a test's own (own data directory and port): the dedicated event store
 * instance, which a test can start and stop without touching the primary server.
 */
final class PrivateMariaDb
{
    public readonly int $port;

    private string $dir;

    /** @var resource|null */
    private $proc = null;

    /** @param list<string> $args server options beyond the defaults (TLS material, say) */
    public function __construct(private array $args = [])
    {
        $this->dir = sys_get_temp_dir().'/suitex-es-'.bin2hex(random_bytes(5));
        mkdir($this->dir, 0777, true);
        $sock = stream_socket_server('tcp://127.0.0.1:0');
        $this->port = (int) substr(strrchr(stream_socket_get_name($sock, false), ':'), 1);
        fclose($sock);
        $install = self::which(['mariadb-install-db', 'mysql_install_db']);
        exec(escapeshellarg($install).' --no-defaults --datadir='.escapeshellarg($this->dir.'/data')
            .' --user=root --auth-root-authentication-method=normal --skip-test-db 2>&1', $out, $code);
        if ($code !== 0) {
            throw new RuntimeException("mariadb-install-db failed:\n".implode("\n", $out));
        }
    }

    public function start(): void
    {
        $cmd = [self::which(['mariadbd', 'mysqld']), '--no-defaults', "--datadir={$this->dir}/data",
            "--socket={$this->dir}/mysqld.sock", "--pid-file={$this->dir}/mysqld.pid", "--port={$this->port}",
            '--bind-address=127.0.0.1', '--user=root', '--skip-name-resolve', '--skip-log-bin',
            '--innodb-buffer-pool-size=64M', '--max-allowed-packet=64M', ...$this->args];
        $log = fopen($this->dir.'/server.log', 'a');
        $this->proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => $log, 2 => $log], $pipes);
        for ($i = 0; $i < 300; $i++) {
            try {
                new \PDO("mysql:host=127.0.0.1;port={$this->port}", 'root', '');

                return;
            } catch (\PDOException $e) {
                usleep(100_000);
            }
        }
        throw new RuntimeException("the private MariaDB did not start; see {$this->dir}/server.log");
    }

    public function stop(): void
    {
        if ($this->proc !== null) {
            $pid = proc_get_status($this->proc)['pid'];
            posix_kill($pid, SIGTERM);
            proc_close($this->proc);
            $this->proc = null;
        }
    }

    public function __destruct()
    {
        $this->stop();
        exec('rm -rf '.escapeshellarg($this->dir));
    }

    private static function which(array $names): string
    {
        foreach ($names as $n) {
            foreach (['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'] as $d) {
                if (is_executable("$d/$n")) {
                    return "$d/$n";
                }
            }
        }
        throw new RuntimeException('MariaDB is not installed ('.implode(', ', $names).')');
    }
}
