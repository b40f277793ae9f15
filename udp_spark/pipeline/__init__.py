"""Stage runners: each reads its inputs, calls the pure transforms, writes, and audits."""
