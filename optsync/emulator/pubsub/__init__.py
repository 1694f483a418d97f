"""The emulator's Pub/Sub API: Change Data Capture events over gRPC.

``capture`` turns the store's committed row changes into events with their writer,
``schemas`` builds the per-entity Avro schemas and bitmaps, ``bus`` retains, replays and
meters the events, ``service`` is the ``eventbus.v1.PubSub`` gRPC service, ``server``
serves it over TLS and ``control`` adds the ``/__emulator__/pubsub`` endpoints.
"""
