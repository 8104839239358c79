DROP TABLE meta;
DROP TABLE locks;
DROP TABLE holds;
DROP TABLE webhook_deliveries;
DROP TABLE spec_versions;
DROP TABLE applied;
DROP TABLE deployment_events;
DROP TABLE deployments;
