"""The Salesforce adapter: OAuth token fetch, the stored connection and the gateway.

Everything in optsync that talks to Salesforce goes through
:class:`optsync.salesforce.gateway.SalesforceGateway`; this package is the only place
that imports simple-salesforce or builds HTTP sessions for Salesforce.
"""
