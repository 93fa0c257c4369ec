"""inftd: the indexer and agent daemon of the INFT platform."""

__version__ = "0.1.0"
