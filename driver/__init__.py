"""Driver CLI: request charges, run service files, tickets."""
