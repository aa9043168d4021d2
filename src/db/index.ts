export { openDb, transaction, type Db, type Row, type QueryResult } from './connection.ts';
export { ident, qualified, literal, PINNED_TEXT_SETTINGS } from './sql.ts';
export { redactUrl } from './redact.ts';
