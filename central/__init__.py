"""Central: the TCP server, charge-point state, sessions and API_Central."""
