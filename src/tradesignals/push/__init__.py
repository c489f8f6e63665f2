"""Web Push: VAPID keys, subscriptions, and the sender of signal notifications."""
