-- The flagship example's schema: the tables as Prisma creates them for Cal.com.
-- Runs on PostgreSQL 15 and on PGlite (PG 17/18).
-- "_user_eventtype" is the implicit many-to-many table Prisma names for a relation: "A" is the
-- EventType id, "B" the users id. This is a legacy database: the link table has no foreign keys,
-- so orphan links (to deleted users or deleted event types) exist.

CREATE TABLE users (
  id       serial PRIMARY KEY,
  username text NOT NULL,
  email    text NOT NULL
);

CREATE TABLE "EventType" (
  id            serial PRIMARY KEY,
  title         text NOT NULL,
  slug          text NOT NULL,
  "userId"      int NULL,
  "teamId"      int NULL,
  length        int NOT NULL DEFAULT 30,
  hidden        boolean NOT NULL DEFAULT false,
  description   text,
  "createdAt"   timestamptz NOT NULL DEFAULT now(),
  metadata      jsonb
);

CREATE UNIQUE INDEX "EventType_userId_slug_key" ON "EventType" ("userId", "slug");
CREATE UNIQUE INDEX "EventType_teamId_slug_key" ON "EventType" ("teamId", "slug");

CREATE TABLE "_user_eventtype" (
  "A" int NOT NULL,
  "B" int NOT NULL
);

CREATE UNIQUE INDEX "_user_eventtype_AB_unique" ON "_user_eventtype" ("A", "B");
CREATE INDEX "_user_eventtype_B_index" ON "_user_eventtype" ("B");
