"""Herald's application: domain services, ports and adapters, independent of the Functions host."""
