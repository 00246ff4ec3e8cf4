-- Demo shop schema: created in both the source and the PostgreSQL target database by `npm run demo`
-- (which then drops, in the target, the tables its config sends to MariaDB: inventory, warehouses).
-- The target has the same columns in the same order (the tests compare checksums of row text), and
-- no foreign keys (rows of different tables may arrive in any order across pipelines).
create table if not exists users (
  id          bigint primary key,
  email       text not null,
  name        text,
  status      text not null default 'active',
  balance     numeric(12,2) not null default 0,
  tags        text[],
  profile     jsonb,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create table if not exists orders (
  id          bigint primary key,
  user_id     bigint not null,
  status      text not null,
  total       numeric(12,2) not null,
  ordered_at  timestamptz not null,
  updated_at  timestamptz not null default now()
);
create table if not exists order_items (
  order_id    bigint not null,
  line_no     int not null,
  sku         text not null,
  qty         int not null,
  price       numeric(10,2) not null,
  updated_at  timestamptz not null default now(),
  primary key (order_id, line_no)
);
create table if not exists warehouses (
  id          int primary key,
  name        text not null,
  city        text not null,
  updated_at  timestamptz not null default now()
);
create table if not exists inventory (
  sku          text primary key,
  warehouse_id int not null,
  qty          int not null,
  reserved     int not null default 0,
  updated_at   timestamptz not null default now()
);
