"""Creates the events and dead-letter topics if they do not exist (for `make run`).

    python scripts/create_topics.py [--partitions 3]
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.settings import Settings


async def create(partitions: int) -> None:
    settings = Settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [name for name in (settings.events_topic, settings.dlq_topic)
                  if name not in existing]
        if wanted:
            await admin.create_topics(
                [NewTopic(name, num_partitions=partitions, replication_factor=1)
                 for name in wanted])
        for name in (settings.events_topic, settings.dlq_topic):
            print(f"topic {name}: {'created' if name in wanted else 'exists'}")
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=3)
    asyncio.run(create(parser.parse_args().partitions))


if __name__ == "__main__":
    main()
