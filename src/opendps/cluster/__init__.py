"""Running several opendps instances as one service (ARCHITECTURE: scale-out): cross-instance
connection ownership, instance roles and the instance's name on the wire."""
