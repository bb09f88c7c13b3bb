-- A chunk of a statement's entries as CSV rows, written by PostgreSQL (COPY ... TO STDOUT,
-- transfers.reports.statement_csv_chunks): the entries after {after} up to {last}, oldest
-- first: entry_wallet_id_idx (wallet_id, id DESC) read backwards, whose order the ORDER BY
-- is (`= ANY` keeps wallet_id in it), so no sort. Columns as
-- transfers.serializers.STATEMENT_CSV_COLUMNS; times in UTC with microseconds; a reference
-- or description that a spreadsheet would run as a formula starts with a quote; an empty
-- one is an empty field.
COPY (
    SELECT 'entry', e.id, to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           e.type, e.amount, e.balance_after, {currency}, e.transfer_id,
           CASE WHEN left(t.reference, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
                THEN '''' || t.reference ELSE NULLIF(t.reference, '') END,
           CASE WHEN left(t.description, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
                THEN '''' || t.description ELSE NULLIF(t.description, '') END
      FROM transfers_ledgerentry e
      JOIN transfers_transfer t ON t.id = e.transfer_id
     WHERE e.wallet_id = ANY(ARRAY[{wallet}]::uuid[]) AND e.id > {after} AND e.id <= {last}
     ORDER BY e.wallet_id DESC, e.id
) TO STDOUT WITH (FORMAT csv)
