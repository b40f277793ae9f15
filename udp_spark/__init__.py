"""udp-spark: unified customer profiles on Spark and Delta Lake."""
__version__ = "0.1.0"
