"""Message bus: topics partitioned by key, consumer groups, at-least-once delivery."""
