"""What the design stands on: the in-process stand-ins and the rules shared by its modules.

- ``in_memory_redis``: InMemoryRedis, the in-process Redis server with redis-py's API;
- ``redis_client``: ``connect(url)``, a redis-py client for a real Redis (imported only then);
- ``records``: what a valid stored event record is, and why an item is poison;
- ``ingest``: IngestBuffer, the batched ingest in front of Redis (``--ingest-batch``);
- ``errors``, ``shown``, ``log_gate``: an exception, a display rule and a log rule they share.

Nothing here imports the design modules above it (api_layer, redis_adapter, db, backup_data)
nor config: what they need is passed in.
"""
