"""Data.Rentgen in one process, for the tests: its REST API, its HTTP ingestion app and
its Kafka consumer, with FastStream's in-memory `TestKafkaBroker` standing in for Kafka.

Run by the Data.Rentgen virtual environment's Python (tests/rentgen_server.py starts it;
the test suite never imports this file: data_rentgen needs Python 3.12 and its own
dependencies). The database must already be migrated.

    RENTGEN_SECRET=... python rentgen_launcher.py \\
        --database-url postgresql+asyncpg://u:p@127.0.0.1:5432/db --api-port 8000 --ingest-port 8001

* REST API (`data_rentgen.server`), on --api-port: `/v1/jobs`, `/v1/runs`, `/v1/datasets`,
  the lineage graphs, `/v1/auth/token` (the dummy auth provider: any login gets an access
  token, its user created on the way) and `/v1/personal-tokens` (mints the personal
  tokens the ingestion requires).
* HTTP ingestion (`data_rentgen.http2kafka`), on --ingest-port: `POST /v1/openlineage`
  with `Authorization: Bearer personal_token_...`; it validates the event and publishes
  it to the Kafka topic `input.runs`.
* Consumer (`data_rentgen.consumer`): its broker's batch subscriber on `input.runs`
  parses the events and writes them to PostgreSQL.

The ingestion app and the consumer each build their own `KafkaBroker`, exactly as in
production. No Kafka broker can be installed on this machine, so both brokers are put
under one `faststream.kafka.TestKafkaBroker`: it replaces their connections with fakes
and its fake producer hands every message published on a topic to the subscribers of
that topic on either broker. A message the ingestion publishes therefore reaches the
consumer's real subscriber (and its real parsing and saving) in the same process, within
the POST (the fake producer awaits the handler), instead of going through Kafka.

SIGTERM or SIGINT stops both HTTP servers and the brokers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

import uvicorn
from faststream.kafka import TestKafkaBroker

from data_rentgen import consumer, http2kafka, server
from data_rentgen.consumer.settings import ConsumerApplicationSettings
from data_rentgen.http2kafka.settings import Http2KafkaApplicationSettings
from data_rentgen.server.settings import ServerApplicationSettings

log = logging.getLogger("rentgen_launcher")
#: Never contacted: TestKafkaBroker replaces every connection (the settings require one).
UNUSED_BOOTSTRAP = "127.0.0.1:9"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the launcher (two servers share the process)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _settings(args: argparse.Namespace) -> tuple[ServerApplicationSettings, Http2KafkaApplicationSettings,
                                                 ConsumerApplicationSettings]:
    database = {"url": args.database_url}
    # The REST API mints personal tokens and the ingestion checks them: one secret for both.
    auth = {
        "provider": "data_rentgen.server.providers.auth.dummy_provider.DummyAuthProvider",
        "access_token": {"secret_key": args.secret},
        "personal_tokens": {"enabled": True, "secret_key": args.secret},
    }
    # No Prometheus metrics (the apps would register the same metrics twice in one
    # process), no static files (the docs' folder is not installed), no debug.
    http = {"debug": False, "monitoring": {"enabled": False}, "static_files": {"enabled": False}}
    kafka = {"bootstrap_servers": [UNUSED_BOOTSTRAP]}
    return (
        ServerApplicationSettings(database=database, auth=auth, server=http),
        Http2KafkaApplicationSettings(database=database, auth=auth, server=http, kafka=kafka),
        ConsumerApplicationSettings(database=database, kafka=kafka, monitoring={"enabled": False}),
    )


async def serve(args: argparse.Namespace) -> None:
    api_settings, ingest_settings, consumer_settings = _settings(args)
    api = server.application_factory(api_settings)
    ingest = http2kafka.application_factory(ingest_settings)
    consumer_broker = consumer.broker_factory(consumer_settings)

    servers = [
        _Server(uvicorn.Config(app, host=args.host, port=port, lifespan="on", log_config=None,
                               access_log=False, timeout_graceful_shutdown=10))
        for app, port in ((api, args.api_port), (ingest, args.ingest_port))
    ]

    def stop() -> None:
        log.info("stopping")
        for one in servers:
            one.should_exit = True

    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop)

    # One in-memory "Kafka" for both brokers: what the ingestion's publisher sends to
    # `input.runs` is handled by the consumer's subscriber (see the module docstring).
    async with TestKafkaBroker(ingest.state.broker, consumer_broker, connect_only=False):
        tasks = [asyncio.create_task(one.serve()) for one in servers]
        log.info("serving: REST API on %s:%d, ingestion on %s:%d", args.host, args.api_port, args.host,
                 args.ingest_port)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()  # one server ended (stopped or failed to start): end the other too
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
        if any(not one.started for one in servers):
            raise SystemExit("a Data.Rentgen HTTP server did not start (port taken?)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://user:password@host:port/db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--ingest-port", type=int, required=True)
    parser.add_argument("--secret", default=os.environ.get("RENTGEN_SECRET", "test-secret"),
                        help="signs access and personal tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s [%(levelname)s] %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
