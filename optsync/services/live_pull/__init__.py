"""The live pull: Salesforce-side opt-outs applied within seconds (Change Data Capture
over the Pub/Sub API) or at the next poll, between nightly runs (docs/sync.md "Live
pull")."""
