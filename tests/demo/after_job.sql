-- What the worker recorded, and what the chat code now calls.
SELECT status, provider_job_id, fine_tuned_model, trained_tokens, finished_at - created_at AS took
  FROM ft_jobs ORDER BY created_at DESC LIMIT 1;
SELECT created_at, type, left(message, 80) AS message
  FROM ft_job_events WHERE job_id = (SELECT id FROM ft_jobs ORDER BY created_at DESC LIMIT 1)
 ORDER BY created_at DESC, seq DESC LIMIT 6;
SELECT step, round(train_loss::numeric, 3) AS train_loss, round(valid_loss::numeric, 3) AS valid_loss
  FROM ft_job_metrics WHERE job_id = (SELECT id FROM ft_jobs ORDER BY created_at DESC LIMIT 1)
 ORDER BY step DESC LIMIT 5;
SELECT name, base_model, active_model, ft_chat_model(id) AS chat_code_calls FROM ft_avatars WHERE provider = 'local';
SELECT action, object_type, object_id FROM ft_audit ORDER BY at DESC LIMIT 4;
