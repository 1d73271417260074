/*
 * emit: publishes the event given as JSON on the command line, and prints its receipt.
 *
 *   make -C ffi/examples && ffi/examples/emit '{"account_id": 42, "aggregate_type": "customer",
 *       "aggregate_id": "C-1001", "event_type": "customer.updated", "payload": {"name": "Ada"}}'
 *
 * Configured from the environment (SUITEX_EVENTS_*, PUBSUB_EMULATOR_HOST, STORAGE_EMULATOR_HOST).
 */
#include <suitex_events.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_last_error(const char *what, suitex_result rc) {
    size_t needed = 0;
    suitex_last_error_message(NULL, 0, &needed); /* ask for the size */
    char *message = malloc(needed);
    if (message != NULL && suitex_last_error_message(message, needed, NULL) == SUITEX_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, suitex_result_name(rc), message);
    }
    free(message);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s EVENT_JSON\n", argv[0]);
        return 2;
    }
    suitex_emitter *emitter = NULL;
    suitex_result rc = suitex_emitter_new_from_env(&emitter);
    if (rc != SUITEX_OK) {
        print_last_error("configuration", rc);
        return 78;
    }
    suitex_emit_receipt receipt;
    rc = suitex_emit_event(emitter, (const uint8_t *)argv[1], strlen(argv[1]), &receipt);
    if (rc == SUITEX_OK) {
        printf("{\"event_id\": \"%s\", \"message_id\": \"%s\", \"payload_location\": \"%s\"}\n", receipt.event_id,
               receipt.message_id, receipt.payload_location == SUITEX_PAYLOAD_GCS ? "gcs" : "inline");
    } else {
        print_last_error("emit", rc);
    }
    suitex_emitter_free(emitter);
    return rc == SUITEX_OK ? 0 : (rc == SUITEX_ERR_VALIDATION || rc == SUITEX_ERR_INVALID_JSON ? 65 : 69);
}
