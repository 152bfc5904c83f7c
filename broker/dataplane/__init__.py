"""Data planes: move subscriber PPP frames between PPPoE sessions and L2TP sessions."""
