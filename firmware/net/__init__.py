"""Network services: Wi-Fi, raw telegram server, MQTT."""
