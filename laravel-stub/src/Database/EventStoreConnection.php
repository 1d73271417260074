<?php

namespace SuiteX\EventBackbone\Database;

use SuiteX\EventBackbone\Exceptions\EventStoreWriteForbiddenException;
use Illuminate\Database\MySqlConnection;
use InvalidArgumentException;

/**
 * The `event_store` connection. What it may send is decided by its role — the `role` of the
 * connection's configuration, `DB_EVENT_STORE_ROLE` — never by the SAPI or runningInConsole()
 * (under Octane a web request runs in a console process):
 *
 * - `reader` (the default; the web tier, reporting): SELECT only;
 * - `writer` (the worker, `events:work`-style queue workers): SELECT and plain INSERT — no
 *   upsert, no INSERT IGNORE, no UPDATE or DELETE (the ledger is append-only);
 * - `migrator` (`php artisan migrate --database=event_store`): anything its account may do.
 *
 * Every write path of Eloquent and the query builder — create(), save(), saveQuietly(),
 * withoutEvents(), insert(), insertGetId(), insertUsing(), insertOrIgnore(), upsert(),
 * updateOrInsert(), update(), delete(), truncate(), raw DB::connection('event_store')
 * statements, the schema builder — ends in insert(), update(), delete(), statement(),
 * affectingStatement() or unprepared() of this connection, each of which checks the role
 * *before* any SQL is sent. The database account of each role (`suitex-events grants`) refuses
 * the same statements, which also covers code that reaches for the raw PDO.
 */
class EventStoreConnection extends MySqlConnection
{
    public const ROLES = ['reader', 'writer', 'migrator'];

    public function __construct($pdo, $database = '', $tablePrefix = '', array $config = [])
    {
        $role = $config['role'] ?? 'reader';
        if (! in_array($role, self::ROLES, true)) {
            throw new InvalidArgumentException(sprintf(
                'DB_EVENT_STORE_ROLE is "%s"; it must be one of %s (the web tier: reader, the worker: writer, migrations: migrator).',
                $role,
                implode(', ', self::ROLES)
            ));
        }
        self::assertTls($config);
        parent::__construct($pdo, $database, $tablePrefix, $config);
    }

    /**
     * TLS fails closed (config/database.php picks the mode): plain text only towards this
     * machine unless DB_EVENT_STORE_ALLOW_PLAINTEXT says otherwise (development only).
     */
    private static function assertTls(array $config): void
    {
        $mode = $config['ssl_mode'] ?? 'preferred';
        $refuse = fn (string $setting, string $why) => new InvalidArgumentException("$setting: $why");
        switch ($mode) {
            case 'disabled':
            case 'preferred':
                if (! ($config['local'] ?? true) && ! ($config['allow_plaintext'] ?? false)) {
                    throw $refuse('DB_EVENT_STORE_SSL_MODE', sprintf(
                        'is %s towards %s, which would send the account\'s credentials and the events in plain text over the network; '
                        .'use required or verify_identity (with DB_EVENT_STORE_SSL_CA), connect through the Cloud SQL Auth Proxy on 127.0.0.1, '
                        .'or, for a development database only, set DB_EVENT_STORE_ALLOW_PLAINTEXT=true',
                        $mode,
                        $config['host'] ?? '?'
                    ));
                }

                return;
            case 'required':
                return;
            case 'verify_identity':
                if (empty($config['ssl_ca'])) {
                    throw $refuse('DB_EVENT_STORE_SSL_CA', 'is not set, but DB_EVENT_STORE_SSL_MODE=verify_identity asks to verify the server certificate');
                }

                return;
            case 'verify_ca':
                throw $refuse('DB_EVENT_STORE_SSL_MODE', 'verify_ca cannot be honoured by PDO: mysqlnd always checks the server\'s name when it verifies '
                    .'a certificate. Use verify_identity (the certificate must name DB_EVENT_STORE_HOST), required, or the Cloud SQL Auth Proxy on 127.0.0.1');
            default:
                throw $refuse('DB_EVENT_STORE_SSL_MODE', "is \"$mode\"; expected disabled, preferred, required or verify_identity");
        }
    }

    /** reader, writer or migrator. */
    public function role(): string
    {
        return $this->getConfig('role') ?? 'reader';
    }

    public function insert($query, $bindings = [])
    {
        $this->assertMay($query, $this->isPlainInsert($query));

        return parent::insert($query, $bindings);
    }

    public function update($query, $bindings = [])
    {
        $this->assertMay($query, false);

        return parent::update($query, $bindings);
    }

    public function delete($query, $bindings = [])
    {
        $this->assertMay($query, false);

        return parent::delete($query, $bindings);
    }

    public function statement($query, $bindings = [])
    {
        $this->assertMay($query, $this->isPlainInsert($query));

        return parent::statement($query, $bindings);
    }

    public function affectingStatement($query, $bindings = [])
    {
        $this->assertMay($query, false);

        return parent::affectingStatement($query, $bindings);
    }

    public function unprepared($query)
    {
        $this->assertMay($query, false);

        return parent::unprepared($query);
    }

    /**
     * Throws unless the role may send `$query`: the migrator anything, the writer a plain
     * INSERT (when `$appends`), the reader nothing but reads.
     */
    private function assertMay(string $query, bool $appends): void
    {
        $role = $this->role();
        if ($role === 'migrator' || ($role === 'writer' && $appends)) {
            return;
        }
        throw EventStoreWriteForbiddenException::forRole($role, self::verb($query));
    }

    /** An INSERT that only adds rows: not an upsert, not INSERT IGNORE. */
    private function isPlainInsert(string $query): bool
    {
        $q = strtolower(ltrim($query));

        return str_starts_with($q, 'insert into ') && ! str_contains($q, ' on duplicate key update ');
    }

    private static function verb(string $query): string
    {
        return strtoupper(strtok(ltrim($query), " \n\t(") ?: 'statement');
    }
}
