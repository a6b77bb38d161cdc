-- certbind schema, version 4: no private key in a job's recorded request.
--
-- A one-click update that uploaded its new certificate recorded the whole request, PEM
-- pair included. The certificate itself was stored sealed; the job now records it by id
-- (the job's new_cert_id), as new jobs do. The store runs with secure_delete, so the
-- bytes the rewrite frees are zeroed, not left in free pages.
UPDATE jobs
SET request = json_set(request, '$.new_certificate', json_object('id', 'cert-' || new_cert_id))
WHERE json_valid(request)
  AND json_type(request, '$.new_certificate.upload') IS NOT NULL
  AND new_cert_id IS NOT NULL;
-- Anything else that still holds a key is dropped whole: a job's request is a record for
-- people, not something certbind reads back.
UPDATE jobs SET request = '{}' WHERE instr(request, 'PRIVATE KEY') > 0;
