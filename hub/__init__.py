"""omnihub core: domain model, ports, storage, services, event bus, API and web apps."""

__version__ = "0.1.0"
