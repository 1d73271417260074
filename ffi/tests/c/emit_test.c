/*
 * Tests of libsuitex_events through its header, as a C program sees it.
 *
 * Configured from the environment (SUITEX_EVENTS_*, PUBSUB_EMULATOR_HOST, STORAGE_EMULATOR_HOST).
 * Prints "emitted <event_id> <payload_location>" for every event it publishes, so the harness can
 * check they arrived, and "FAIL file:line: ..." for every failed check; exits non-zero on any.
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -pthread emit_test.c -I include -L target/debug -lsuitex_events
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "suitex_events.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            failures++;                                                 \
        }                                                               \
    } while (0)

static const char *last_error(void) {
    static char buf[2048];
    size_t needed = 0;
    if (suitex_last_error_message(buf, sizeof buf, &needed) != SUITEX_OK) {
        snprintf(buf, sizeof buf, "(message of %zu bytes did not fit)", needed);
    }
    return buf;
}

/* A call that must fail with `want`, leaving a last error that contains `contains`. */
static void expect_failure(int line, suitex_result got, suitex_result want, const char *contains) {
    const char *msg = last_error();
    if (got != want) {
        fprintf(stderr, "FAIL %s:%d: got %s, wanted %s (%s)\n", __FILE__, line, suitex_result_name(got),
                suitex_result_name(want), msg);
        failures++;
    } else if (strstr(msg, contains) == NULL) {
        fprintf(stderr, "FAIL %s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, line, msg, contains);
        failures++;
    }
}
#define EXPECT_FAILURE(got, want, contains) expect_failure(__LINE__, (got), (want), (contains))

static suitex_result emit_str(const suitex_emitter *em, const char *json, suitex_emit_receipt *r) {
    return suitex_emit_event(em, (const uint8_t *)json, strlen(json), r);
}

static void emitted(const suitex_emit_receipt *r) {
    printf("emitted %s %s\n", r->event_id, r->payload_location == SUITEX_PAYLOAD_GCS ? "gcs" : "inline");
}

#define EVENT(fields) "{\"account_id\": 42, \"aggregate_type\": \"customer\", \"event_type\": \"customer.updated\", " fields "}"

static void test_emits(const suitex_emitter *em) {
    suitex_emit_receipt r;
    memset(&r, 0, sizeof r);
    const char *small = EVENT("\"event_id\": \"0190a7f2-4c1e-7b3a-9d2e-000000000001\", \"aggregate_id\": \"C-1\", "
                              "\"payload\": {\"name\": \"Zo\\u00eb\", \"n\": 1.5, \"tags\": [], \"obj\": {}, "
                              "\"max\": 18446744073709551615, \"rate\": 0.1}, "
                              "\"metadata\": {\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}");
    suitex_result rc = emit_str(em, small, &r);
    CHECK(rc == SUITEX_OK, "small emit: %s: %s", suitex_result_name(rc), last_error());
    CHECK(strcmp(r.event_id, "0190a7f2-4c1e-7b3a-9d2e-000000000001") == 0, "receipt event_id %s", r.event_id);
    CHECK(strlen(r.message_id) > 0, "receipt has a message id");
    CHECK(r.result == SUITEX_OK && r.error[0] == '\0', "receipt says it was published");
    CHECK(r.payload_location == SUITEX_PAYLOAD_INLINE, "small payload travels inline");
    if (rc == SUITEX_OK) emitted(&r);

    /* ~300 KB payload: above the 256 KiB offload threshold. */
    size_t blob = 300 * 1024;
    const char *head = EVENT("\"aggregate_id\": \"C-2\", \"payload\": {\"blob\": \"");
    const char *tail = "\"}}";
    char *big = malloc(strlen(head) + blob + strlen(tail) + 1);
    strcpy(big, head);
    memset(big + strlen(head), 'x', blob);
    strcpy(big + strlen(head) + blob, tail);
    memset(&r, 0, sizeof r);
    rc = emit_str(em, big, &r);
    free(big);
    CHECK(rc == SUITEX_OK, "oversized emit: %s: %s", suitex_result_name(rc), last_error());
    CHECK(r.payload_location == SUITEX_PAYLOAD_GCS, "oversized payload goes to the claim-check bucket");
    CHECK(strlen(r.event_id) == 36, "a generated event id: %s", r.event_id);
    if (rc == SUITEX_OK) emitted(&r);
}

static void test_error_paths(const suitex_emitter *em) {
    suitex_emit_receipt r;
    const char *ok = EVENT("\"aggregate_id\": \"C-3\", \"payload\": null");
    memset(&r, 0x5a, sizeof r);
    suitex_emit_receipt untouched = r;

    EXPECT_FAILURE(emit_str(NULL, ok, &r), SUITEX_ERR_NULL_ARGUMENT, "emitter is NULL");
    EXPECT_FAILURE(suitex_emit_event(em, NULL, 10, &r), SUITEX_ERR_NULL_ARGUMENT, "event_json is NULL");
    EXPECT_FAILURE(emit_str(em, ok, NULL), SUITEX_ERR_NULL_ARGUMENT, "receipt is NULL");
    EXPECT_FAILURE(suitex_emitter_new_from_env(NULL), SUITEX_ERR_NULL_ARGUMENT, "out is NULL");
    EXPECT_FAILURE(suitex_emitter_new_from_json((const uint8_t *)"{}", 2, NULL), SUITEX_ERR_NULL_ARGUMENT, "out is NULL");

    const uint8_t not_utf8[] = {'{', '"', 0xff, 0xfe, '"', '}'};
    EXPECT_FAILURE(suitex_emit_event(em, not_utf8, sizeof not_utf8, &r), SUITEX_ERR_INVALID_UTF8, "event_json is not valid UTF-8");
    EXPECT_FAILURE(emit_str(em, "{\"account_id\": 42,", &r), SUITEX_ERR_INVALID_JSON, "event_json is not valid JSON");
    CHECK(memcmp(&r, &untouched, sizeof r) == 0, "a call refused before the event was read leaves the receipt untouched");

    /* Validation: each names the field and the limit, as in the SDK. */
    EXPECT_FAILURE(emit_str(em, "{\"account_id\": 0, \"aggregate_type\": \"customer\", \"aggregate_id\": \"C\", \"event_type\": \"e\", \"payload\": 1}", &r),
                   SUITEX_ERR_VALIDATION, "account_id must be an integer from 1 to 18446744073709551615; got 0");
    char long_id[512];
    snprintf(long_id, sizeof long_id, EVENT("\"aggregate_id\": \"%0192d\", \"payload\": 1"), 7);
    EXPECT_FAILURE(emit_str(em, long_id, &r), SUITEX_ERR_VALIDATION, "aggregate_id is 192 bytes; the limit is 191");
    EXPECT_FAILURE(emit_str(em, "{\"account_id\": 42, \"aggregate_type\": \"Customer\", \"aggregate_id\": \"C\", \"event_type\": \"e\", \"payload\": 1}", &r),
                   SUITEX_ERR_VALIDATION, "aggregate_type contains 'C' (U+0043) at character 1");
    EXPECT_FAILURE(emit_str(em, "{\"account_id\": 42, \"aggregate_type\": \"customer\", \"aggregate_id\": \"C\", \"event_type\": \"a b\", \"payload\": 1}", &r),
                   SUITEX_ERR_VALIDATION, "event_type contains U+0020 at character 2");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\""), &r), SUITEX_ERR_VALIDATION, "payload is missing");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": 1, \"event_id\": \"abc\""), &r),
                   SUITEX_ERR_VALIDATION, "event_id \"abc\" is not a UUID");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": 1, \"occurred_at\": \"2026-11-26T17:24:00+02:00\""), &r),
                   SUITEX_ERR_VALIDATION, "is not UTC");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\\u0000\", \"payload\": 1"), &r),
                   SUITEX_ERR_VALIDATION, "aggregate_id contains unprintable character U+0000");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": 1, \"tenant\": 1"), &r),
                   SUITEX_ERR_VALIDATION, "event has unknown field \"tenant\"");
    CHECK(r.result == SUITEX_ERR_VALIDATION && strstr(r.error, "event has unknown field \"tenant\"") == r.error,
          "the receipt of a refused event says why: %s", r.error);
    CHECK(r.message_id[0] == '\0', "a refused event has no message id");

    /* Exact payloads (sdk/tests/data/exact_payloads.json): a number the ledger would alter, or a
       duplicate key, is refused naming its path; nothing is sent. */
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": {\"big\": 1180591620717411303424}"), &r),
                   SUITEX_ERR_VALIDATION, "payload.big is the integer 1180591620717411303424, outside the range the ledger stores exactly");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": {\"rate\": 0.1234567890123456789012345678901234567890}"), &r),
                   SUITEX_ERR_VALIDATION, "payload.rate is 0.1234567890123456789012345678901234567890, which the ledger would store as the double");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": {\"x\": [1, 1e400]}"), &r),
                   SUITEX_ERR_VALIDATION, "payload.x[1] is 1e400, beyond the range of a double");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": {\"o\": {\"sku\": \"A\", \"sku\": \"B\"}}"), &r),
                   SUITEX_ERR_VALIDATION, "payload.o.sku appears twice in one object");
    CHECK(r.result == SUITEX_ERR_VALIDATION && r.message_id[0] == '\0', "an inexact payload is refused in the receipt too: %s", r.error);
    /* The trace context a C caller gives travels in the event's metadata, in W3C form. */
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": {}, \"metadata\": {\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\"}"), &r),
                   SUITEX_ERR_VALIDATION, "metadata.traceparent has an all-zero parent id");
    char deep[256];
    snprintf(deep, sizeof deep, EVENT("\"aggregate_id\": \"C\", \"payload\": %s1%s"),
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    EXPECT_FAILURE(emit_str(em, deep, &r), SUITEX_ERR_VALIDATION, "more than 31 levels deep");
    const char *batch = "[" EVENT("\"aggregate_id\": \"C\", \"payload\": 1") ", "
                        EVENT("\"aggregate_id\": \"C\", \"payload\": {\"n\": -9223372036854775809}") "]";
    suitex_emit_receipt batch_receipts[2];
    size_t batch_count = 0;
    EXPECT_FAILURE(suitex_emit_events(em, (const uint8_t *)batch, strlen(batch), batch_receipts, 2, &batch_count),
                   SUITEX_ERR_VALIDATION, "events[1].payload.n is the integer -9223372036854775809");

    /* Configuration as JSON. */
    suitex_emitter *bad = NULL;
    EXPECT_FAILURE(suitex_emitter_new_from_json((const uint8_t *)"[1]", 3, &bad), SUITEX_ERR_INVALID_JSON, "config_json must be a JSON object");
    EXPECT_FAILURE(suitex_emitter_new_from_json((const uint8_t *)"{", 1, &bad), SUITEX_ERR_INVALID_JSON, "config_json is not valid JSON");
    const char *bad_threshold = "{\"SUITEX_EVENTS_PROJECT\": \"suitex-prod\", \"SUITEX_EVENTS_OFFLOAD_THRESHOLD\": \"lots\"}";
    EXPECT_FAILURE(suitex_emitter_new_from_json((const uint8_t *)bad_threshold, strlen(bad_threshold), &bad),
                   SUITEX_ERR_CONFIG, "SUITEX_EVENTS_OFFLOAD_THRESHOLD is \"lots\"");
    EXPECT_FAILURE(suitex_emitter_new_from_json((const uint8_t *)"{}", 2, &bad), SUITEX_ERR_CONFIG, "SUITEX_EVENTS_PROJECT is not set");
    CHECK(bad == NULL, "no handle on failure");

    /* The last error into a caller buffer: too small, size query, exact fit. */
    emit_str(em, "{", &r);
    char tiny[8];
    size_t needed = 0;
    CHECK(suitex_last_error_message(tiny, sizeof tiny, &needed) == SUITEX_ERR_BUFFER_TOO_SMALL, "a small buffer is refused");
    CHECK(needed > sizeof tiny, "the needed size is reported (%zu)", needed);
    size_t queried = 0;
    CHECK(suitex_last_error_message(NULL, 0, &queried) == SUITEX_ERR_BUFFER_TOO_SMALL && queried == needed, "size query");
    CHECK(suitex_last_error_message(NULL, 10, NULL) == SUITEX_ERR_NULL_ARGUMENT, "NULL buffer with a length");
    char *exact = malloc(needed);
    CHECK(suitex_last_error_message(exact, needed, NULL) == SUITEX_OK, "an exact buffer fits");
    CHECK(strlen(exact) + 1 == needed && strstr(exact, "event_json is not valid JSON") == exact, "message: %s", exact);
    free(exact);

    CHECK(strcmp(suitex_result_name(SUITEX_ERR_VALIDATION), "SUITEX_ERR_VALIDATION") == 0, "result names");
    CHECK(strcmp(suitex_result_name(SUITEX_ERR_RUNTIME), "SUITEX_ERR_RUNTIME") == 0, "result names");
    CHECK(strcmp(suitex_result_name(99), "SUITEX_UNKNOWN_RESULT") == 0, "unknown result name");
}

static void test_batch(const suitex_emitter *em) {
    const char *batch = "["
        EVENT("\"aggregate_id\": \"B-1\", \"payload\": {\"seq\": 1}") ","
        EVENT("\"aggregate_id\": \"B-1\", \"payload\": {\"seq\": 2}") ","
        EVENT("\"aggregate_id\": \"B-2\", \"payload\": {\"seq\": 1}") "]";
    suitex_emit_receipt receipts[3];
    size_t count = 0;

    /* Too few receipts: nothing is sent, the needed number is reported. */
    CHECK(suitex_emit_events(em, (const uint8_t *)batch, strlen(batch), receipts, 2, &count) == SUITEX_ERR_BUFFER_TOO_SMALL,
          "two receipts for three events are refused");
    CHECK(count == 3, "the batch needs %zu receipts", count);

    suitex_result rc = suitex_emit_events(em, (const uint8_t *)batch, strlen(batch), receipts, 3, &count);
    CHECK(rc == SUITEX_OK && count == 3, "batch: %s (%zu): %s", suitex_result_name(rc), count, last_error());
    for (size_t i = 0; i < count && rc == SUITEX_OK; i++) {
        CHECK(receipts[i].result == SUITEX_OK, "event %zu: %s", i, receipts[i].error);
        CHECK(strlen(receipts[i].message_id) > 0, "event %zu has a message id", i);
        if (receipts[i].result == SUITEX_OK) emitted(&receipts[i]);
    }

    /* One bad event refuses the whole batch, naming it. */
    const char *bad = "[" EVENT("\"aggregate_id\": \"B-3\", \"payload\": 1") "," EVENT("\"aggregate_id\": \"\", \"payload\": 1") "]";
    EXPECT_FAILURE(suitex_emit_events(em, (const uint8_t *)bad, strlen(bad), receipts, 3, &count), SUITEX_ERR_VALIDATION,
                   "events[1].aggregate_id is empty");
    EXPECT_FAILURE(suitex_emit_events(em, (const uint8_t *)"{}", 2, receipts, 3, &count), SUITEX_ERR_INVALID_JSON,
                   "events_json must be a JSON array");
}

/* Callers written against the old header keep working (and the compiler says what to use). */
static void test_deprecated_emit(const suitex_emitter *em) {
    const char *json = EVENT("\"aggregate_id\": \"D-1\", \"payload\": {\"old\": true}");
    suitex_receipt r;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    suitex_result rc = suitex_emit(em, (const uint8_t *)json, strlen(json), &r);
#pragma GCC diagnostic pop
    CHECK(rc == SUITEX_OK, "suitex_emit: %s", last_error());
    if (rc == SUITEX_OK) printf("emitted %s inline\n", r.event_id);
}

struct worker {
    const suitex_emitter *em;
    int index;
    int ok;
    char ids[25][SUITEX_EVENT_ID_SIZE];
};

static void *emit_from_thread(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 25; i++) {
        char json[256];
        snprintf(json, sizeof json, EVENT("\"aggregate_id\": \"T-%d\", \"payload\": {\"thread\": %d, \"seq\": %d}"), w->index, w->index, i);
        suitex_emit_receipt r;
        if (emit_str(w->em, json, &r) == SUITEX_OK) {
            memcpy(w->ids[w->ok], r.event_id, SUITEX_EVENT_ID_SIZE);
            w->ok++;
        } else {
            fprintf(stderr, "FAIL thread %d emit %d: %s\n", w->index, i, last_error());
        }
    }
    return NULL;
}

static void test_threads(const suitex_emitter *em) {
    pthread_t threads[4];
    struct worker workers[4];
    for (int t = 0; t < 4; t++) {
        workers[t] = (struct worker){.em = em, .index = t, .ok = 0};
        CHECK(pthread_create(&threads[t], NULL, emit_from_thread, &workers[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].ok == 25, "thread %d emitted %d of 25", t, workers[t].ok);
        for (int i = 0; i < workers[t].ok; i++) {
            printf("emitted %s inline\n", workers[t].ids[i]);
        }
    }
}

/* Spool mode through the JSON configuration: a receipt says the event was spooled (no message
 * id yet), and a full spool is its own result code, not a Cloud Storage failure. */
static void test_spool(const char *project) {
    char dir[] = "/tmp/suitex-c-spool-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char config[512];
    snprintf(config, sizeof config,
             "{\"SUITEX_EVENTS_PROJECT\": \"%s\", \"SUITEX_EVENTS_SPOOL\": \"%s/spool\", "
             "\"SUITEX_EVENTS_SPOOL_MAX_BYTES\": 65536}",
             project ? project : "", dir);
    suitex_emitter *spooling = NULL;
    suitex_result rc = suitex_emitter_new_from_json((const uint8_t *)config, strlen(config), &spooling);
    CHECK(rc == SUITEX_OK, "new_from_json in spool mode: %s", last_error());
    if (spooling == NULL) return;

    /* An event of about 40 KB: one fits in 64 KiB, two do not. */
    static char big[41000];
    const char *head = "{\"account_id\": 42, \"aggregate_type\": \"customer\", \"event_type\": \"customer.updated\", "
                       "\"aggregate_id\": \"S-1\", \"payload\": \"";
    size_t len = strlen(head);
    memcpy(big, head, len);
    memset(big + len, 'x', 40000);
    len += 40000;
    memcpy(big + len, "\"}", 3);

    suitex_emit_receipt r;
    rc = emit_str(spooling, big, &r);
    CHECK(rc == SUITEX_OK && r.result == SUITEX_OK, "spooled emit: %s", last_error());
    CHECK(r.spooled, "the receipt says spooled");
    CHECK(r.message_id[0] == '\0', "no message id until the relay publishes it");
    rc = emit_str(spooling, big, &r);
    CHECK(rc == SUITEX_ERR_SPOOL_FULL && r.result == SUITEX_ERR_SPOOL_FULL, "full spool: got %s", suitex_result_name(rc));
    CHECK(!r.spooled, "a refused event is not spooled");
    CHECK(strstr(r.error, "SUITEX_EVENTS_SPOOL_MAX_BYTES = 65536") != NULL, "the error names the limit: %s", r.error);
    CHECK(strcmp(suitex_result_name(SUITEX_ERR_SPOOL_FULL), "SUITEX_ERR_SPOOL_FULL") == 0, "result names");
    CHECK(suitex_emitter_free(spooling) == SUITEX_OK, "free");
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0, "removing the spool");
}

int main(void) {
    CHECK(strcmp(suitex_version(), "0.3.0") == 0, "version %s", suitex_version());
    CHECK(suitex_abi_version() == 1, "ABI %u", suitex_abi_version());

    suitex_emitter *em = NULL;
    suitex_result rc = suitex_emitter_new_from_env(&em);
    CHECK(rc == SUITEX_OK && em != NULL, "new_from_env: %s: %s", suitex_result_name(rc), last_error());
    if (em == NULL) return 1;

    test_emits(em);
    test_error_paths(em);
    test_batch(em);
    test_deprecated_emit(em);
    test_threads(em);

    /* A handle made from JSON settings works the same. */
    const char *project = getenv("SUITEX_EVENTS_PROJECT");
    const char *pubsub = getenv("PUBSUB_EMULATOR_HOST");
    const char *topic = getenv("SUITEX_EVENTS_RAW_TOPIC");
    char config[512];
    snprintf(config, sizeof config,
             "{\"SUITEX_EVENTS_PROJECT\": \"%s\", \"PUBSUB_EMULATOR_HOST\": \"%s\", \"SUITEX_EVENTS_RAW_TOPIC\": \"%s\", "
             "\"SUITEX_EVENTS_PUBLISH_DEADLINE\": 10000}",
             project ? project : "", pubsub ? pubsub : "", topic ? topic : "");
    suitex_emitter *from_json = NULL;
    rc = suitex_emitter_new_from_json((const uint8_t *)config, strlen(config), &from_json);
    CHECK(rc == SUITEX_OK, "new_from_json: %s", last_error());
    suitex_emit_receipt r;
    rc = emit_str(from_json, EVENT("\"aggregate_id\": \"J-1\", \"payload\": {\"via\": \"json config\"}"), &r);
    CHECK(rc == SUITEX_OK, "emit through a JSON-configured handle: %s", last_error());
    if (rc == SUITEX_OK) emitted(&r);
    CHECK(suitex_emitter_free(from_json) == SUITEX_OK, "free");
    test_spool(project);

    /* Release, then use after free and double free: detected, never dereferenced. */
    CHECK(suitex_emitter_free(em) == SUITEX_OK, "free");
    EXPECT_FAILURE(emit_str(em, EVENT("\"aggregate_id\": \"C\", \"payload\": 1"), &r), SUITEX_ERR_INVALID_HANDLE, "not live");
    EXPECT_FAILURE(suitex_emitter_free(em), SUITEX_ERR_INVALID_HANDLE, "not live");
    CHECK(suitex_emitter_free(NULL) == SUITEX_OK, "free(NULL) is a no-op");

    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    return failures ? 1 : 0;
}
