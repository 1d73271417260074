/*
 * The spans of a C program's emits (docs/architecture.md §2.8), as a C program sees the library.
 *
 * Configured from the environment (SUITEX_EVENTS_*, PUBSUB_EMULATOR_HOST, OTEL_*). Emits one
 * event carrying the trace context given as argv[1] in its metadata, frees the emitter (which
 * sends the spans still buffered) and prints "emitted <event_id>". With no argument it only
 * creates an emitter and prints "created <result name> <last error>".
 *
 *   gcc -std=c11 -Wall -Wextra -Werror trace_test.c -I include -L target/debug -lsuitex_events
 */
#include "suitex_events.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    suitex_emitter *em = NULL;
    suitex_result rc = suitex_emitter_new_from_env(&em);
    if (argc < 2 || rc != SUITEX_OK) {
        char msg[1024];
        size_t needed = 0;
        if (rc == SUITEX_OK || suitex_last_error_message(msg, sizeof msg, &needed) != SUITEX_OK) msg[0] = '\0';
        printf("created %s %s\n", suitex_result_name(rc), msg);
        suitex_emitter_free(em);
        return 0;
    }
    char event[512];
    snprintf(event, sizeof event,
             "{\"account_id\": 42, \"aggregate_type\": \"customer\", \"aggregate_id\": \"C-traced\", "
             "\"event_type\": \"customer.updated\", \"payload\": {\"n\": 1}, "
             "\"metadata\": {\"traceparent\": \"%s\"}}",
             argv[1]);
    suitex_emit_receipt r;
    rc = suitex_emit_event(em, (const uint8_t *)event, strlen(event), &r);
    if (rc != SUITEX_OK) {
        fprintf(stderr, "FAIL emit: %s: %s\n", suitex_result_name(rc), r.error);
        return 1;
    }
    printf("emitted %s\n", r.event_id);
    return suitex_emitter_free(em) == SUITEX_OK ? 0 : 1;
}
