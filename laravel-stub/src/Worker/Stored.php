<?php

namespace SuiteX\EventBackbone\Worker;

/** An event in the store: the row written now, or the same event found stored already. */
final class Stored
{
    public function __construct(public readonly int $storeId, public readonly bool $duplicate)
    {
    }
}
