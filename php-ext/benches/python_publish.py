"""The Python side of `cargo bench -p suitex_events --bench compare`.

Publishes EVENTS ordered messages over KEYS ordering keys with the official google-cloud-pubsub
publisher (message ordering enabled) to TOPIC on the emulator (PUBSUB_EMULATOR_HOST): the same
1 KiB envelope JSON, ordering key and attributes the SDK sends, built before the clock starts.
Prints {"seconds": ...}.
"""

import json
import sys
import time
import uuid

from google.cloud import pubsub_v1


def main() -> None:
    project, topic, n, keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    filler = "x" * (1024 - 40)
    messages = []
    for i in range(n):
        event_id = str(uuid.uuid4())
        key = f"7:customer:C-{i % keys}"
        body = {
            "event_id": event_id,
            "account_id": 7,
            "aggregate_type": "customer",
            "aggregate_id": f"C-{i % keys}",
            "event_type": "customer.updated",
            "occurred_at": "2026-11-26T15:24:00.123456Z",
            "payload": {"seq": i, "filler": filler},
            "schema_version": 1,
        }
        attributes = {
            "event_id": event_id,
            "account_id": "7",
            "aggregate_type": "customer",
            "event_type": "customer.updated",
            "payload_location": "inline",
            "schema_version": "1",
        }
        messages.append((json.dumps(body, separators=(",", ":")).encode(), key, attributes))

    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    path = publisher.topic_path(project, topic)
    started = time.perf_counter()
    futures = [publisher.publish(path, data, ordering_key=key, **attrs) for data, key, attrs in messages]
    for f in futures:
        f.result(timeout=600)
    print(json.dumps({"seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
