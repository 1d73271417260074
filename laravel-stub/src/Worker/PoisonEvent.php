<?php

namespace SuiteX\EventBackbone\Worker;

/**
 * The event can never be stored as it is (its data is refused, or its event_id is stored as
 * another event): the worker nacks it, and Pub/Sub dead-letters it after its last attempt.
 */
final class PoisonEvent extends \RuntimeException
{
}
