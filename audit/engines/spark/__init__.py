"""The Spark engine: the local engine's pure rules run in executors (the ``[spark]`` extra).

Only this package imports pyspark. session.py starts (or joins) the SparkSession from
``[engine]``; the stage modules beside it map partitions through the same functions the local
engine calls and bring only aggregates back to the driver.
"""
