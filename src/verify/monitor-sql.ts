// All SQL of the monitoring window, in one place.

// A monitoring check's rows are counted by countedSql in ../verify/verify-sql.ts (the same shape as spec.verify).

