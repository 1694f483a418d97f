"""optsync: keeps email opt-outs consistent between a sales workspace and Salesforce."""

__version__ = "0.1.0"
