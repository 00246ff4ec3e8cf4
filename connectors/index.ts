import './postgres/source.js';
import './postgres/sink.js';
