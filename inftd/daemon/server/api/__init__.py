"""The API's routes, one module per concern; ``inftd.daemon.server.app`` assembles them."""
