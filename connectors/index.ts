import './postgres/source/index.js';
import './mariadb/source/index.js';
import './postgres/sink.js';
import './mariadb/index.js';
import './postgres/poll/index.js';
import './mariadb/poll/index.js';
import './rabbitmq/index.js';
import './http/index.js';
