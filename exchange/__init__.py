"""Object stores, encryption, the shard format and the coded scatter-reduce round."""
