"""The generation pipeline: the queue (rows of ``generations``), the worker, the router and
strategies over the providers, content storage, and the scheduler that drives them."""
