import './postgres/source/index.js';
import './mariadb/source/index.js';
import './postgres/sink.js';
import './mariadb/index.js';
