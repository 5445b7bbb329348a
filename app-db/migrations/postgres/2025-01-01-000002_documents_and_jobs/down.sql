DROP TABLE processing_jobs;
DROP TABLE documents;
