"""moto's server, with requests processed one at a time.

moto's DynamoDB TransactWriteItems backs the whole table up with deepcopy and, when a condition
fails, restores that backup -- with no lock between its request threads. A transaction that
fails on one thread can so undo a transaction another thread committed meanwhile, which real
DynamoDB (serializable transactions) never does, and a conditional counter such as Sealpost's
attempt count comes out wrong. Serialising requests makes moto's store linearizable, as
DynamoDB is; connections are still accepted concurrently.

Also, `GET /moto-api/data.json` (the record of sent SMS and email the tests read) skips a model
attribute that raises: moto's S3 multipart uploads have a `status` that raises NoSuchBucket
once their upload is done, which made the whole listing a 500 on a server that also held S3.

Usage: python infra/moto_server.py -H 127.0.0.1 -p PORT   (the same as moto_server)
"""

import argparse
import json
import os
import threading

from werkzeug.serving import run_simple

from moto.moto_api._internal.responses import MotoAPIResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def model_data(self, request, full_url, headers):
    """moto's own listing (moto_api/_internal/responses.py), skipping any attribute that raises."""
    from moto.core.model_instances import model_data as tracked

    results = {}
    for service in sorted(tracked):
        results[service] = {}
        for name in sorted(tracked[service]):
            results[service][name] = []
            for instance in tracked[service][name].instances_tracked:
                found = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    try:
                        value = getattr(instance, attr)
                        json.dumps(value)
                    except Exception:  # noqa: BLE001 (moto's models raise their own errors too)
                        continue
                    found[attr] = value
                results[service][name].append(found)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


MotoAPIResponse.model_data = model_data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # Drain the response inside the lock: the work happens while it is produced.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
