<?php

namespace SuiteX\EventBackbone\Console;

use Illuminate\Console\Command;
use Illuminate\Support\Facades\DB;

/**
 * `php artisan events:verify`: recomputes the ledger's hash chain (docs/architecture.md §2.2,
 * "The hash chain") on the `event_store` connection — the reader role suffices — and names the
 * first seq that does not match: a row changed, removed, inserted out of band or reordered. The
 * same check as `suitex-events verify`, written again from the encoding's specification.
 */
class VerifyCommand extends Command
{
    public const GENESIS = '0000000000000000000000000000000000000000000000000000000000000000';

    protected $signature = 'events:verify
        {--from-seq=1 : First ledger position to check (the row before it anchors the chain)}
        {--to-seq= : Last ledger position to check (default: the newest row)}
        {--json : Print the result as one JSON object}';

    protected $description = "Recompute the ledger's hash chain and name the first row that does not match";

    /** The row's canonical encoding, version 1, after $previous. */
    public static function encoding(object $row, string $previous): string
    {
        $text = "suitex-ledger/1\n".$previous;
        foreach (['seq', 'event_id', 'account_id', 'aggregate_type', 'aggregate_id', 'aggregate_version', 'event_type', 'occurred_at', 'created_at', 'payload'] as $field) {
            $value = (string) $row->{$field};
            $text .= "\n{$field}=".strlen($value).':'.$value;
        }

        return $text.($row->metadata === null ? "\nmetadata=null" : "\nmetadata=".strlen($row->metadata).':'.$row->metadata);
    }

    public function handle(): int
    {
        $db = DB::connection(config('suitex-events.connection', 'event_store'));
        $from = max(1, (int) $this->option('from-seq'));
        $to = $this->option('to-seq') === null ? PHP_INT_MAX : (int) $this->option('to-seq');
        $previous = self::GENESIS;
        if ($from > 1) {
            $previous = $db->table('event_store')->where('seq', $from - 1)->value('row_hash');
            if ($previous === null) {
                return $this->report(['from_seq' => $from, 'to_seq' => 0, 'rows' => 0, 'head_hash' => null,
                    'first_break' => ['kind' => 'missing', 'seq' => $from - 1]]);
            }
        }
        $result = ['from_seq' => $from, 'to_seq' => 0, 'rows' => 0, 'head_hash' => null, 'first_break' => null];
        $expected = $from;
        // `DATE_FORMAT` and `CAST(… AS CHAR)`: the values exactly as the encoding names them, on
        // MySQL 8 and MariaDB alike; pages of 1,000 rows keep memory bounded.
        $rows = $db->table('event_store')
            ->select(['seq', 'event_id', 'account_id', 'aggregate_type', 'aggregate_id', 'aggregate_version', 'event_type', 'row_hash'])
            ->selectRaw("DATE_FORMAT(occurred_at, '%Y-%m-%d %H:%i:%s.%f') AS occurred_at")
            ->selectRaw("DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') AS created_at")
            ->selectRaw('CAST(payload AS CHAR) AS payload, CAST(metadata AS CHAR) AS metadata')
            ->where('seq', '>=', $from)->where('seq', '<=', $to)
            ->lazyById(1000, 'seq');
        foreach ($rows as $row) {
            if ((int) $row->seq !== $expected) {
                $result['first_break'] = ['kind' => 'missing', 'seq' => $expected, 'found' => (int) $row->seq];

                return $this->report($result);
            }
            $hash = hash('sha256', self::encoding($row, $previous));
            if (! hash_equals($hash, $row->row_hash)) {
                $result['first_break'] = ['kind' => 'mismatch', 'seq' => $expected, 'stored' => $row->row_hash, 'expected' => $hash];

                return $this->report($result);
            }
            $previous = $hash;
            $result['rows']++;
            $result['to_seq'] = $expected;
            $result['head_hash'] = $hash;
            $expected++;
        }

        return $this->report($result);
    }

    private function report(array $result): int
    {
        $result['intact'] = $result['first_break'] === null;
        if ($this->option('json')) {
            $this->line(json_encode($result, JSON_UNESCAPED_SLASHES));
        } elseif ($result['intact']) {
            $this->info("events:verify: seq {$result['from_seq']} to {$result['to_seq']} intact ({$result['rows']} rows); head hash ".($result['head_hash'] ?? '(no rows)'));
        } else {
            $b = $result['first_break'];
            $why = $b['kind'] === 'missing'
                ? "seq {$b['seq']} is missing".(isset($b['found']) ? " (the next row is seq {$b['found']})" : '').': a row was removed'
                : "seq {$b['seq']} does not match its hash (stored {$b['stored']}, computed {$b['expected']}): the row, or its place in the chain, was changed";
            $this->error("events:verify: the chain breaks at seq {$b['seq']}: {$why}");
        }

        return $result['intact'] ? 0 : 1;
    }
}
