"""The API's routes, one module per concern; ``inftd.daemon.server`` assembles them."""
