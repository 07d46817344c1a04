"""Pure drafting logic: no protobuf, no SQL, no network."""
