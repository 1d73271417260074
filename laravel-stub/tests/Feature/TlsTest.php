<?php

namespace Tests\Feature;

use InvalidArgumentException;
use Tests\Support\LaravelTestCase;
use Tests\Support\PrivateMariaDb;

/**
 * The event_store connection's TLS for every mode it documents, against a MariaDB of the test's
 * own that serves a certificate for 127.0.0.1 signed by a test CA; and the modes that would send
 * plain text over the network, refused.
 */
final class TlsTest extends LaravelTestCase
{
    private string $certs;

    protected function setUp(): void
    {
        parent::setUp();
        $this->certs = sys_get_temp_dir().'/suitex-laravel-certs-'.bin2hex(random_bytes(4));
        mkdir($this->certs);
        $openssl = function (string $args) {
            exec('cd '.escapeshellarg($this->certs).' && openssl '.$args.' 2>&1', $out, $code);
            $this->assertSame(0, $code, "openssl $args: ".implode("\n", $out));
        };
        foreach (['ca', 'other-ca'] as $ca) {
            $openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=suitex test $ca' -keyout $ca.key -out $ca.pem "
                ."-addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'");
        }
        $openssl("req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout server.key -out server.csr");
        file_put_contents("$this->certs/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            ."keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
        $openssl('x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out server.pem -extfile server.ext');
    }

    protected function tearDown(): void
    {
        exec('rm -rf '.escapeshellarg($this->certs));
        parent::tearDown();
    }

    private function cipher(array $env): string
    {
        $this->boot($env);

        return (string) \DB::connection('event_store')->selectOne("SHOW SESSION STATUS LIKE 'Ssl_cipher'")->Value;
    }

    public function test_each_mode_connects_as_documented_and_a_wrong_authority_is_refused(): void
    {
        $es = new PrivateMariaDb(["--ssl-ca=$this->certs/ca.pem", "--ssl-cert=$this->certs/server.pem", "--ssl-key=$this->certs/server.key"]);
        $es->start();
        $server = [
            'DB_EVENT_STORE_HOST' => '127.0.0.1', 'DB_EVENT_STORE_PORT' => (string) $es->port, 'DB_EVENT_STORE_DATABASE' => 'mysql',
            'DB_EVENT_STORE_USERNAME' => 'root', 'DB_EVENT_STORE_PASSWORD' => '', 'DB_EVENT_STORE_SSL_MODE' => '',
        ];
        // (boot() sets the process environment, so every case names what it leaves unset.)
        $ca = ['DB_EVENT_STORE_SSL_CA' => "$this->certs/ca.pem"];

        // A CA and no mode: verified (PDO verifies with the name), encrypted.
        $this->assertNotSame('', $this->cipher(array_merge($server, $ca)));
        $this->assertSame('verify_identity', \DB::connection('event_store')->getConfig('ssl_mode'));
        // required: encrypted, without a CA.
        $this->assertNotSame('', $this->cipher(array_merge($server, ['DB_EVENT_STORE_SSL_MODE' => 'required', 'DB_EVENT_STORE_SSL_CA' => ''])));
        // disabled on the loopback: plain text, allowed.
        $this->assertSame('', $this->cipher(array_merge($server, ['DB_EVENT_STORE_SSL_MODE' => 'disabled', 'DB_EVENT_STORE_SSL_CA' => ''])));
        // The same server checked against another authority: the connection fails.
        try {
            $this->cipher(array_merge($server, ['DB_EVENT_STORE_SSL_MODE' => 'verify_identity', 'DB_EVENT_STORE_SSL_CA' => "$this->certs/other-ca.pem"]));
            $this->fail('a server the CA did not sign was accepted');
        } catch (\Illuminate\Database\QueryException $e) {
            $this->assertStringContainsString('SSL', $e->getMessage());
        }
    }

    public function test_plain_text_over_the_network_and_verify_ca_are_refused_with_the_setting_named(): void
    {
        $remote = ['DB_EVENT_STORE_HOST' => '10.20.0.5', 'DB_EVENT_STORE_SSL_MODE' => 'disabled'];
        foreach ([
            [$remote, 'DB_EVENT_STORE_SSL_MODE: is disabled towards 10.20.0.5'],
            [array_merge($remote, ['DB_EVENT_STORE_SSL_MODE' => 'preferred']), 'plain text over the network'],
            [['DB_EVENT_STORE_SSL_MODE' => 'verify_ca', 'DB_EVENT_STORE_SSL_CA' => '/etc/ssl/ca.pem'], 'verify_ca cannot be honoured by PDO'],
            [['DB_EVENT_STORE_SSL_MODE' => 'verify_identity', 'DB_EVENT_STORE_SSL_CA' => ''], 'DB_EVENT_STORE_SSL_CA: is not set'],
        ] as [$env, $expected]) {
            $this->boot($env);
            try {
                \DB::connection('event_store');
                $this->fail("accepted: ".json_encode($env));
            } catch (InvalidArgumentException $e) {
                $this->assertStringContainsString($expected, $e->getMessage());
            }
        }
        // A development database elsewhere, said explicitly.
        $this->boot(array_merge($remote, ['DB_EVENT_STORE_ALLOW_PLAINTEXT' => 'true']));
        $this->assertSame('disabled', \DB::connection('event_store')->getConfig('ssl_mode'));
        // A remote host without a mode: TLS required.
        $this->boot(['DB_EVENT_STORE_HOST' => 'db.internal', 'DB_EVENT_STORE_SSL_MODE' => '', 'DB_EVENT_STORE_ALLOW_PLAINTEXT' => '']);
        $this->assertSame('required', \DB::connection('event_store')->getConfig('ssl_mode'));
    }
}
