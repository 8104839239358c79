DROP TABLE actions;
DROP TABLE pull_requests;
