<?php

namespace SuiteX\EventBackbone\Casts;

use Illuminate\Contracts\Database\Eloquent\CastsAttributes;

/**
 * A JSON column read as an array (like Eloquent's `array` cast) and written either from an
 * array (encoded) or from a JsonText (written byte for byte, so what is stored is exactly the
 * document that was emitted).
 */
final class JsonDocument implements CastsAttributes
{
    public function get($model, string $key, $value, array $attributes)
    {
        return $value === null ? null : json_decode($value, true, 512, JSON_THROW_ON_ERROR);
    }

    public function set($model, string $key, $value, array $attributes)
    {
        if ($value === null || $value instanceof JsonText) {
            return $value?->json;
        }

        return json_encode($value, JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION);
    }
}
