<?php

namespace SuiteX\EventBackbone\Console;

use Illuminate\Console\Command;
use Illuminate\Support\Facades\DB;
use SuiteX\EventBackbone\Config\Duration;
use SuiteX\EventBackbone\Exceptions\EventStoreWriteForbiddenException;
use SuiteX\EventBackbone\Models\EventStore;
use SuiteX\EventBackbone\Worker\DatabaseErrors;
use SuiteX\EventBackbone\Worker\EventWriter;
use SuiteX\EventBackbone\Worker\PoisonEvent;
use Symfony\Component\Console\Output\ConsoleOutputInterface;

/**
 * `php artisan events:work`: the PHP worker. Pulls events.raw-sub through the extension's
 * Inbox, writes each event with EventStore::create() on the `event_store` connection (writer
 * role) and acks it once the row is committed, like the Rust worker (`suitex-events worker`).
 * Rows reach events.merged from the ledger, through the feeder (`suitex-events worker` or
 * `suitex-events feed`), in seq order.
 *
 * * A duplicate event_id stored as the same event is a success: no second row, acked. Stored
 *   as another event, or refused by the database for its own data, the event is poison: nacked, and dead-lettered by Pub/Sub after its last attempt. Later events of the
 *   same ordering key in the same pull are nacked behind it (held back), so a key never
 *   overtakes its own failure; on its last attempt the key goes on at once.
 * * Any other failure (database down, failover, revoked grant, full disk; Pub/Sub down) is
 *   retried with back-off for as long as it lasts, with the event kept in hand: the extension
 *   keeps its lease alive, so no delivery attempt is spent. After an error about the session
 *   (DatabaseErrors::CONNECTION_SCOPED_CODES: access, authentication, read-only, connection
 *   limit, a lost or killed session) the connection is purged, so the retry logs in afresh and
 *   sees today's grants and primary; any other database error closes it. One WARN line per
 *   back-off step names the failure's class.
 * * SIGTERM / SIGINT: the event in hand is finished (or, while a failure is being waited out,
 *   left for redelivery), the rest of the pull is released, and the command exits 0.
 */
class WorkCommand extends Command
{
    protected $signature = 'events:work
        {--batch=100 : Most events taken per pull (1-1000)}
        {--wait=2000 : How long a pull waits for the first event, in milliseconds}
        {--max-attempts= : Delivery attempts after which the subscription dead-letters (default: suitex-events.worker.max_delivery_attempts)}
        {--stop-when-empty : Exit once a pull finds nothing}';

    protected $description = 'Store events from events.raw-sub with EventStore::create() and ack them (events.merged is fed from the ledger)';

    private bool $stopping = false;

    /** @var array<string,int> */
    private array $counts = ['stored' => 0, 'duplicates' => 0, 'poison' => 0, 'held_back' => 0, 'retries' => 0];

    public function handle(): int
    {
        try {
            EventStore::assertWritable();
        } catch (EventStoreWriteForbiddenException $e) {
            $this->error($e->getMessage().' (the worker needs DB_EVENT_STORE_ROLE=writer and the writer account)');

            return 1;
        }
        if (! class_exists(\SuiteX\Events\Inbox::class)) {
            $this->error('The suitex_events extension is not loaded in this PHP CLI (its Inbox class is missing); see scripts/install-extension.');

            return 1;
        }
        $this->trapSignals();
        $config = $this->laravel['config'];
        $batch = max(1, min(1000, (int) $this->option('batch')));
        $wait = max(0, (int) $this->option('wait'));
        $maxAttempts = (int) ($this->option('max-attempts') ?? $config->get('suitex-events.worker.max_delivery_attempts', 5));
        try {
            $backoff = new Backoff(
                Duration::milliseconds($config->get('suitex-events.worker.backoff_min', '200ms'), 'SUITEX_WORKER_BACKOFF_MIN'),
                Duration::milliseconds($config->get('suitex-events.worker.backoff_max', '30s'), 'SUITEX_WORKER_BACKOFF_MAX'),
            );
        } catch (\InvalidArgumentException $e) {
            $this->error($e->getMessage());

            return 1;
        }

        $inbox = new \SuiteX\Events\Inbox();
        $writer = new EventWriter();
        $this->say('info', "events:work started (batch {$batch}, dead-lettering after {$maxAttempts} attempts)");
        while (! $this->stopping) {
            $deliveries = $this->persist('pulling from events.raw-sub', $backoff, fn () => $inbox->pull($batch, $wait));
            if ($deliveries === null) {
                break;
            }
            if ($deliveries === []) {
                if ($this->option('stop-when-empty')) {
                    break;
                }
                continue;
            }
            $this->work($inbox, $writer, $backoff, $deliveries, $maxAttempts);
        }
        $c = $this->counts;
        $this->say('info', "events:work stopped: {$c['stored']} stored, {$c['duplicates']} duplicates, {$c['poison']} poison, {$c['held_back']} held back, {$c['retries']} retries");

        return 0;
    }

    /** Settles one pull's deliveries in order. */
    private function work(\SuiteX\Events\Inbox $inbox, EventWriter $writer, Backoff $backoff, array $deliveries, int $maxAttempts): void
    {
        /** @var array<string,string> ordering key => the poison message it waits behind */
        $heldBack = [];
        foreach ($deliveries as $i => $d) {
            if ($this->stopping) {
                $this->release($inbox, array_slice($deliveries, $i));

                return;
            }
            $key = $d['ordering_key'];
            $id = $d['event']['event_id'] ?? "message {$d['message_id']}";
            if ($key !== '' && isset($heldBack[$key])) {
                $this->nack($inbox, $d);
                $this->counts['held_back']++;
                $this->say('debug', "held back {$id}: behind poison message {$heldBack[$key]} of key {$key}");
                continue;
            }
            try {
                if ($d['error'] !== null) {
                    throw new PoisonEvent($d['error']);
                }
                $stored = $this->persist("storing event {$id}", $backoff, fn () => $writer->store($d));
            } catch (PoisonEvent $p) {
                $this->nack($inbox, $d);
                $this->counts['poison']++;
                $attempt = $d['delivery_attempt'];
                $last = $attempt >= $maxAttempts;
                $this->say('warn', "poison {$id} (attempt {$attempt} of {$maxAttempts}".($last ? ', dead-lettered now' : '')."): {$p->getMessage()}");
                if ($key !== '' && ! $last) {
                    $heldBack[$key] = $d['message_id'];
                }
                continue;
            }
            if ($stored === null) {
                // Stopping while the database is away: this event and the rest come back later.
                $this->release($inbox, array_slice($deliveries, $i));

                return;
            }
            // Only acked: the row reaches events.merged from the ledger (the Rust worker's feeder).
            $acked = $this->persist("acknowledging {$id}", $backoff, function () use ($inbox, $d, $stored) {
                $inbox->ackStored($d['ack_id'], $stored->storeId);

                return true;
            });
            if ($acked === null) {
                // Stored but not acked: its redelivery is a duplicate, acked then.
                $this->release($inbox, array_slice($deliveries, $i));

                return;
            }
            $this->counts[$stored->duplicate ? 'duplicates' : 'stored']++;
            $this->say('debug', ($stored->duplicate ? 'duplicate ' : 'stored ')."{$id} as store id {$stored->storeId}");
        }
    }

    /**
     * Runs `$operation` until it succeeds, backing off between failures; null if asked to stop
     * meanwhile. PoisonEvent and the extension's errors in what it was given
     * (ValidationException, ConfigurationException) are not retried.
     */
    private function persist(string $what, Backoff $backoff, callable $operation): mixed
    {
        for ($failures = 0; ; $failures++) {
            try {
                $result = $operation();
                $backoff->reset();

                return $result;
            } catch (PoisonEvent|\SuiteX\Events\ValidationException|\SuiteX\Events\ConfigurationException $e) {
                throw $e;
            } catch (\Throwable $e) {
                [$class, $sessionGone] = DatabaseErrors::failure($e);
                $connection = $this->laravel['config']->get('suitex-events.connection', 'event_store');
                if ($sessionGone) {
                    // Never reuse it: a new login sees today's grants, password and primary.
                    DB::purge($connection);
                } elseif ($class === 'database') {
                    DB::connection($connection)->disconnect();
                }
                $this->counts['retries']++;
                $delay = $backoff->next();
                $this->say('warn', "{$what} failed ({$class}, ".($failures + 1).' in a row), retrying in '.$delay.' ms: '.strtok($e->getMessage(), "\n"));
                if ($this->stopping || ! $this->sleep($delay)) {
                    return null;
                }
            }
        }
    }

    private function nack(\SuiteX\Events\Inbox $inbox, array $d): void
    {
        try {
            $inbox->nack($d['ack_id']);
        } catch (\Throwable $e) {
            // Its lease is no longer kept: it comes back when the lease runs out.
            $this->say('warn', "releasing message {$d['message_id']} failed (it returns when its lease runs out): ".$e->getMessage());
        }
    }

    private function release(\SuiteX\Events\Inbox $inbox, array $deliveries): void
    {
        foreach ($deliveries as $d) {
            $this->nack($inbox, $d);
        }
    }

    /** Sleeps `$ms` milliseconds unless asked to stop; false if it was. */
    private function sleep(int $ms): bool
    {
        $until = microtime(true) + $ms / 1000;
        while (! $this->stopping && ($left = $until - microtime(true)) > 0) {
            usleep((int) min(100_000, $left * 1e6));
        }

        return ! $this->stopping;
    }

    private function trapSignals(): void
    {
        if (! function_exists('pcntl_async_signals')) {
            $this->say('warn', 'the pcntl extension is missing: SIGTERM stops the worker at once instead of after the event in hand');

            return;
        }
        pcntl_async_signals(true);
        foreach ([SIGTERM, SIGINT] as $signal) {
            pcntl_signal($signal, function () {
                $this->stopping = true;
            });
        }
    }

    private function say(string $level, string $message): void
    {
        if ($level === 'debug' && ! $this->output->isVerbose()) {
            return;
        }
        $line = sprintf('[%s] %s: %s', date('Y-m-d H:i:s'), $level, $message);
        $output = $this->output->getOutput();
        if ($level === 'warn' && $output instanceof ConsoleOutputInterface) {
            $output->getErrorOutput()->writeln($line);
        } else {
            $this->line($line);
        }
    }
}
