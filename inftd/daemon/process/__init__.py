"""One daemon process among others: its roles (``roles``), leases on the work only one
process may do (``leader``), the heartbeats it writes (``heartbeat``) and the cluster they
show (``cluster``)."""
