ALTER TABLE deployment_events DROP COLUMN actor;
DROP TABLE api_tokens;
