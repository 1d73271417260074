<?php

// Writes the stub file of the suitex_events extension to stdout, from the loaded extension's
// reflection (what `php --re suitex_events` prints) and the prose in docs.php:
//
//   php -n -d extension=target/debug/libsuitex_events_php.so php-ext/stubs/generate.php \
//       > php-ext/stubs/suitex_events.stub.php
//
// Run it under the CLI: the Inbox class exists only there.

if (! extension_loaded('suitex_events')) {
    fwrite(STDERR, "load the extension: php -n -d extension=…/libsuitex_events_php.so ".$argv[0]."\n");
    exit(1);
}

const NS = 'SuiteX\\Events\\';
$docs = require __DIR__.'/docs.php';
$ext = new ReflectionExtension('suitex_events');

function doc(?string $text, string $indent = ''): string
{
    if ($text === null) {
        return '';
    }
    $lines = array_map(fn ($l) => rtrim("$indent * $l"), explode("\n", $text));

    return "$indent/**\n".implode("\n", $lines)."\n$indent */\n";
}

function short(string $name): string
{
    return str_starts_with($name, NS) ? substr($name, strlen(NS)) : '\\'.$name;
}

/** A type as written inside the namespace: classes fully qualified unless they are ours. */
function type(ReflectionType $t): string
{
    if ($t instanceof ReflectionNamedType && ! $t->isBuiltin()) {
        return ($t->allowsNull() ? '?' : '').short($t->getName());
    }

    return (string) $t;
}

function signature(ReflectionFunctionAbstract $f, string $name): string
{
    $params = [];
    foreach ($f->getParameters() as $p) {
        $s = ($p->getType() !== null ? type($p->getType()).' ' : '').'$'.$p->getName();
        if ($p->isDefaultValueAvailable()) {
            $s .= ' = '.strtolower(var_export($p->getDefaultValue(), true));
        }
        $params[] = $s;
    }
    $return = $f->hasReturnType() ? ': '.type($f->getReturnType()) : '';

    return $name.'('.implode(', ', $params).')'.$return;
}

$directives = array_map(fn ($d) => "  $d", array_keys($ext->getINIEntries()));
$out = "<?php\n\n".doc($docs['file']."\n".implode("\n", $directives))."\nnamespace SuiteX\\Events;\n";

foreach ($ext->getFunctions() as $f) {
    $out .= "\n".doc($docs[short($f->getName())] ?? null).'function '.signature($f, short($f->getName()))."\n{\n}\n";
}

foreach ($ext->getClasses() as $c) {
    $name = short($c->getName());
    $parent = $c->getParentClass() ? ' extends '.short($c->getParentClass()->getName()) : '';
    $out .= "\n".doc($docs[$name] ?? null).($c->isFinal() ? 'final ' : '')."class $name$parent\n{\n";
    $methods = array_filter($c->getMethods(ReflectionMethod::IS_PUBLIC), fn ($m) => $m->getDeclaringClass()->getName() === $c->getName());
    // Constructor first, then in declaration order.
    usort($methods, fn ($a, $b) => ($b->isConstructor() <=> $a->isConstructor()));
    $bodies = [];
    foreach ($methods as $m) {
        $bodies[] = doc($docs[$name.'::'.$m->getName()] ?? null, '    ').'    public '.($m->isStatic() ? 'static ' : '').'function '.signature($m, $m->getName())."\n    {\n    }\n";
    }
    $out .= implode("\n", $bodies)."}\n";
}

echo $out;
