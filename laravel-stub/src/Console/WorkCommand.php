<?php

namespace SuiteX\EventBackbone\Console;

use Illuminate\Console\Command;
use Illuminate\Support\Facades\DB;
use SuiteX\EventBackbone\Config\Duration;
use SuiteX\EventBackbone\Exceptions\EventStoreWriteForbiddenException;
use SuiteX\EventBackbone\Models\EventStore;
use SuiteX\EventBackbone\Worker\DatabaseErrors;
use SuiteX\EventBackbone\Worker\EventWriter;
use SuiteX\EventBackbone\Worker\Parking;
use SuiteX\EventBackbone\Worker\PoisonEvent;
use SuiteX\EventBackbone\Worker\Stored;
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
 *   overtakes its own failure. On its last attempt (Pub/Sub dead-letters it on that nack) its
 *   key is parked first, exactly as the Rust worker parks it (Worker\Parking, on the same
 *   tables): the key's later events are kept aside and acked, never appended, until a redrive
 *   brings the dead letter back — then it and the kept events are appended in order — or an
 *   operator skips it (`suitex-events parked`). docs/architecture.md §2.5 "Parked keys".
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

    private \SuiteX\Events\Inbox $inbox;

    private EventWriter $writer;

    private Parking $parking;

    private Backoff $backoff;

    /** Delivery attempts after which the subscription dead-letters: the last one parks its key. */
    private int $maxAttempts;

    /** @var array<string,int> */
    private array $counts = ['stored' => 0, 'duplicates' => 0, 'poison' => 0, 'held_back' => 0, 'parked' => 0, 'kept_aside' => 0, 'released' => 0, 'retries' => 0];

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
        $this->maxAttempts = (int) ($this->option('max-attempts') ?? $config->get('suitex-events.worker.max_delivery_attempts', 5));
        try {
            $this->backoff = new Backoff(
                Duration::milliseconds($config->get('suitex-events.worker.backoff_min', '200ms'), 'SUITEX_WORKER_BACKOFF_MIN'),
                Duration::milliseconds($config->get('suitex-events.worker.backoff_max', '30s'), 'SUITEX_WORKER_BACKOFF_MAX'),
            );
        } catch (\InvalidArgumentException $e) {
            $this->error($e->getMessage());

            return 1;
        }

        $this->inbox = new \SuiteX\Events\Inbox();
        $this->writer = new EventWriter();
        $this->parking = new Parking($config->get('suitex-events.connection', 'event_store'));
        $this->say('info', "events:work started (batch {$batch}, dead-lettering after {$this->maxAttempts} attempts)");
        while (! $this->stopping) {
            $deliveries = $this->persist('pulling from events.raw-sub', fn () => $this->inbox->pull($batch, $wait));
            if ($deliveries === null) {
                break;
            }
            if ($deliveries === []) {
                if ($this->option('stop-when-empty')) {
                    break;
                }
                continue;
            }
            $this->work($deliveries);
        }
        $c = $this->counts;
        $this->say('info', "events:work stopped: {$c['stored']} stored, {$c['duplicates']} duplicates, {$c['poison']} poison, {$c['held_back']} held back, {$c['parked']} keys parked, {$c['kept_aside']} kept aside, {$c['released']} parks released, {$c['retries']} retries");

        return 0;
    }

    /** Settles one pull's deliveries in order. */
    private function work(array $deliveries): void
    {
        // The open parks, read once per pull like the Rust worker does per batch.
        $parks = $this->persist('reading the parked keys', fn () => $this->parking->openParks());
        if ($parks === null) {
            $this->release($deliveries);

            return;
        }
        /** @var array<string,string> ordering key => the poison message it waits behind */
        $heldBack = [];
        for ($i = 0; $i < count($deliveries);) {
            if ($this->stopping) {
                $this->release(array_slice($deliveries, $i));

                return;
            }
            $d = $deliveries[$i];
            $done = $d['ordering_key'] !== '' && isset($parks[$d['ordering_key']])
                ? $this->settleParked($d, $parks, $heldBack)
                : $this->settle($d, $parks, $heldBack);
            if ($done === self::STOPPED) {
                $this->release(array_slice($deliveries, $i));

                return;
            }
            if ($done === self::AGAIN) {
                // A park ended meanwhile (another worker released it): read them again.
                $parks = $this->persist('reading the parked keys', fn () => $this->parking->openParks());
                if ($parks === null) {
                    $this->release(array_slice($deliveries, $i));

                    return;
                }
                continue;
            }
            $i++;
        }
    }

    /** What settling a delivery came to: settled, to be settled again (parks changed), or stopping. */
    private const SETTLED = 0;

    private const AGAIN = 1;

    private const STOPPED = 2;

    /**
     * Settles a delivery of a key that is not parked: stores it and acks it, or — poison — nacks
     * it, and on its last attempt parks the key first (docs/architecture.md §2.5).
     */
    private function settle(array $d, array &$parks, array &$heldBack): int
    {
        $id = $this->name($d);
        if ($this->holdBack($d, $heldBack)) {
            return self::SETTLED;
        }
        if ($d['error'] !== null) {
            return $this->poison($d, $d['error'], $parks, $heldBack);
        }
        try {
            $stored = $this->persist("storing event {$id}", fn () => $this->appending($d, fn () => $this->writer->store($d)));
        } catch (PoisonEvent $p) {
            return $this->poison($d, $p->getMessage(), $parks, $heldBack);
        }
        if ($stored === null) {
            // Stopping while the database is away: this event and the rest come back later.
            return self::STOPPED;
        }

        return $this->ackStored($d, $stored);
    }

    /**
     * Runs `$insert` (the INSERT of `$d`'s event) inside the extension's database span — `INSERT
     * event_store`, linked to the delivery's `receive` span — which records its failure, if any.
     * The span is recorded only when the OTEL_* variables ask for spans to be exported.
     */
    private function appending(array $d, callable $insert): mixed
    {
        $span = $this->inbox->appendSpan($d['ack_id']);
        try {
            $result = $insert();
        } catch (\Throwable $e) {
            $span->end(strtok($e->getMessage(), "\n") ?: get_class($e));
            throw $e;
        }
        $span->end();

        return $result;
    }

    /**
     * Settles a delivery of a parked key. Its oldest park's dead letter, brought back by a
     * redrive, releases the park (the dead letter and the events kept aside are appended in
     * order); a dead letter of a later park waits behind it; any other event is kept aside, and
     * poison on its last attempt parks the key again, behind its open parks. Behind poison that
     * has attempts left the key's later events are held back, not kept aside: kept behind the
     * older park, they would be released ahead of that poison's dead letter.
     */
    private function settleParked(array $d, array &$parks, array &$heldBack): int
    {
        $key = $d['ordering_key'];
        $id = $this->name($d);
        $oldest = $parks[$key][0];
        if ($d['data_sha256'] === $oldest['data_sha256']) {
            try {
                if ($d['error'] !== null) {
                    throw new PoisonEvent($d['error']);
                }
                $stored = $this->persist("releasing the parked key {$key}", fn () => $this->appending($d, fn () => $this->parking->release($oldest, $d, $this->writer)) ?? false);
            } catch (PoisonEvent $p) {
                // It fails again: the key stays parked behind it (and Pub/Sub dead-letters it
                // again after its last attempt).
                $this->nack($d);
                $this->counts['poison']++;
                $this->say('warn', "poison {$id}, the dead letter of parked key {$key} (park {$oldest['id']}), fails again; the key stays parked: {$p->getMessage()}");

                return self::SETTLED;
            }
            if ($stored === null) {
                return self::STOPPED;
            }
            if ($stored === false) {
                return self::AGAIN;
            }
            $this->counts['released']++;
            $this->say('info', "parked key {$key} released (park {$oldest['id']}): its dead letter {$id} and the events kept aside behind it are appended in order");
            array_shift($parks[$key]);
            if ($parks[$key] === []) {
                unset($parks[$key]);
            }

            return $this->ackStored($d, $stored);
        }
        if (in_array($d['data_sha256'], array_column($parks[$key], 'data_sha256'), true)) {
            // The dead letter of a later park: released only after the earlier ones.
            $this->nack($d);
            $this->counts['held_back']++;
            $this->say('debug', "held back {$id}: a dead letter of parked key {$key} behind an earlier one (park {$oldest['id']})");

            return self::SETTLED;
        }
        if ($this->holdBack($d, $heldBack)) {
            return self::SETTLED;
        }
        if ($d['error'] !== null) {
            return $this->poison($d, $d['error'], $parks, $heldBack);
        }
        $newest = $parks[$key][count($parks[$key]) - 1];
        $kept = $this->persist("keeping {$id} aside", fn () => $this->parking->keepAside($newest, $d));
        if ($kept === null) {
            return self::STOPPED;
        }
        if ($kept === false) {
            return self::AGAIN;
        }
        $acked = $this->persist("acknowledging {$id}", function () use ($d) {
            $this->inbox->ack($d['ack_id']);

            return true;
        });
        if ($acked === null) {
            // Kept aside but not acked: its redelivery is kept aside again, once.
            return self::STOPPED;
        }
        $this->counts['kept_aside']++;
        $this->say('debug', "kept {$id} aside behind park {$newest['id']} of key {$key}");

        return self::SETTLED;
    }

    /** Nacks the delivery if it is behind poison of its key in this pull (held back); whether it did. */
    private function holdBack(array $d, array $heldBack): bool
    {
        $key = $d['ordering_key'];
        if ($key === '' || ! isset($heldBack[$key])) {
            return false;
        }
        $this->nack($d);
        $this->counts['held_back']++;
        $this->say('debug', "held back {$this->name($d)}: behind poison message {$heldBack[$key]} of key {$key}");

        return true;
    }

    /**
     * Nacks poison (`$reason`). On its last attempt — Pub/Sub dead-letters it on this nack — its
     * key is parked first (again, behind its open parks, when it is parked already); before
     * that, the key's later events in this pull are held back behind it.
     */
    private function poison(array $d, string $reason, array &$parks, array &$heldBack): int
    {
        $key = $d['ordering_key'];
        $of = isset($parks[$key]) ? " of parked key {$key}" : '';
        $last = $d['delivery_attempt'] >= $this->maxAttempts;
        if ($key !== '' && $last && ! $this->parkKey($d, $reason, $parks)) {
            return self::STOPPED;
        }
        $this->nack($d);
        $this->counts['poison']++;
        $this->say('warn', "poison {$this->name($d)}{$of} (attempt {$d['delivery_attempt']} of {$this->maxAttempts}".($last ? ', dead-lettered now' : '')."): {$reason}");
        if ($key !== '' && ! $last) {
            $heldBack[$key] = $d['message_id'];
        }

        return self::SETTLED;
    }

    /** Parks the delivery's key (before the nack that dead-letters it); false if stopping meanwhile. */
    private function parkKey(array $d, string $reason, array &$parks): bool
    {
        $park = $this->persist("parking the key {$d['ordering_key']}", fn () => $this->parking->park($d, $reason, $parks));
        if ($park === null) {
            return false;
        }
        if (! in_array($park['id'], array_column($parks[$d['ordering_key']] ?? [], 'id'), true)) {
            $parks[$d['ordering_key']][] = $park;
        }
        $this->counts['parked']++;
        $this->say('warn', "key {$d['ordering_key']} parked (park {$park['id']}): {$this->name($d)} is dead-lettered on this nack; its later events are kept aside until it is redriven or skipped (suitex-events parked)");

        return true;
    }

    /** Acks a delivery whose event is stored as `$stored`. */
    private function ackStored(array $d, Stored $stored): int
    {
        $id = $this->name($d);
        // Only acked: the row reaches events.merged from the ledger (the Rust worker's feeder).
        $acked = $this->persist("acknowledging {$id}", function () use ($d, $stored) {
            $this->inbox->ackStored($d['ack_id'], $stored->storeId);

            return true;
        });
        if ($acked === null) {
            // Stored but not acked: its redelivery is a duplicate, acked then.
            return self::STOPPED;
        }
        $this->counts[$stored->duplicate ? 'duplicates' : 'stored']++;
        $this->say('debug', ($stored->duplicate ? 'duplicate ' : 'stored ')."{$id} as store id {$stored->storeId}");

        return self::SETTLED;
    }

    /** The delivery's event id, or its message id when its body names none. */
    private function name(array $d): string
    {
        return $d['event_id'] ?? "message {$d['message_id']}";
    }

    /**
     * Runs `$operation` until it succeeds, backing off between failures; null if asked to stop
     * meanwhile. PoisonEvent and the extension's errors in what it was given
     * (ValidationException, ConfigurationException) are not retried.
     */
    private function persist(string $what, callable $operation): mixed
    {
        for ($failures = 0; ; $failures++) {
            try {
                $result = $operation();
                $this->backoff->reset();

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
                $delay = $this->backoff->next();
                $this->say('warn', "{$what} failed ({$class}, ".($failures + 1).' in a row), retrying in '.$delay.' ms: '.strtok($e->getMessage(), "\n"));
                if ($this->stopping || ! $this->sleep($delay)) {
                    return null;
                }
            }
        }
    }

    private function nack(array $d): void
    {
        try {
            $this->inbox->nack($d['ack_id']);
        } catch (\Throwable $e) {
            // Its lease is no longer kept: it comes back when the lease runs out.
            $this->say('warn', "releasing message {$d['message_id']} failed (it returns when its lease runs out): ".$e->getMessage());
        }
    }

    private function release(array $deliveries): void
    {
        foreach ($deliveries as $d) {
            $this->nack($d);
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
