<?php

namespace SuiteX\EventBackbone\Console;

use Illuminate\Console\Command;
use Illuminate\Support\Facades\DB;
use SuiteX\EventBackbone\Worker\Parking;

/**
 * `php artisan events:parked [KEY] [--json]`: the ordering keys parked behind a dead letter
 * (docs/architecture.md §2.5, "Parked keys"), read from the same append-only tables as
 * `suitex-events parked list|show`: the dead letter each key waits on, why, and the events kept
 * aside behind it. Releasing and skipping are `suitex-events parked release|skip`.
 */
class ParkedCommand extends Command
{
    protected $signature = 'events:parked
        {key? : Show this ordering key (account:aggregate_type:aggregate_id): its park, the events kept aside, its history}
        {--json : Print JSON}';

    protected $description = 'List the ordering keys parked behind a dead letter, or show one';

    public function handle(): int
    {
        $db = DB::connection(config('suitex-events.connection', 'event_store'));
        $parks = Parking::parks($db);
        $key = $this->argument('key');
        if ($key === null) {
            if ($this->option('json')) {
                $this->line(json_encode($parks, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRETTY_PRINT));
            } else {
                $this->table(['key', 'parked at', 'events aside', 'dead letter', 'reason'], array_map(
                    fn ($p) => [$p['ordering_key'], $p['parked_at'], $p['parked_events'], $p['event_id'] ?? $p['message_id'], $p['reason']],
                    $parks
                ));
                $this->line(count($parks).' parked keys');
            }

            return self::SUCCESS;
        }

        $history = $db->table('event_store_parking')->where('ordering_key', $key)->orderBy('id')
            ->select(['id', 'action', 'park_id', 'event_id', 'message_id', 'reason', 'recorded_by'])
            ->selectRaw("DATE_FORMAT(recorded_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS recorded_at")
            ->get()->map(fn ($r) => array_merge((array) $r, [
                'id' => (int) $r->id,
                'park_id' => $r->park_id === null ? null : (int) $r->park_id,
            ]))->all();
        if ($history === []) {
            $this->error("{$key} was never parked");

            return self::INVALID;
        }
        // Oldest first: the first is the dead letter the key waits on now.
        $keyParks = array_values(array_filter($parks, fn ($p) => $p['ordering_key'] === $key));
        $open = $keyParks[0] ?? null;
        $aside = $keyParks === [] ? [] : $db->table('event_store_parked_events')->whereIn('park_id', array_column($keyParks, 'id'))
            ->orderBy('park_id')->orderBy('id')->pluck('event')->map(fn ($e) => json_decode($e, true))->all();
        if ($this->option('json')) {
            $this->line(json_encode(['ordering_key' => $key, 'parked' => $open, 'parks' => $keyParks, 'events_aside' => $aside, 'history' => $history],
                JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRETTY_PRINT));
        } elseif ($open === null) {
            $this->line("{$key} is not parked");
        } else {
            $this->line("{$key} is parked since {$open['parked_at']} behind dead letter ".($open['event_id'] ?? $open['message_id']).": {$open['reason']}");
            $this->line(count($keyParks).' dead letters, '.count($aside).' events kept aside');
        }

        return self::SUCCESS;
    }
}
