"""Platform corner: MLflow (and later Databricks) specifics, kept out of the matching logic."""
