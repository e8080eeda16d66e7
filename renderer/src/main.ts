// Entry of the UI: global styles, the app, and the connection to the service.
import './app.css';
import { mount } from 'svelte';
import App from './App.svelte';
import { service } from './stores/service.svelte.js';
import { clock } from './stores/clock.svelte.js';

performance.mark('cm:start');
clock.start();
service.start();
mount(App, { target: document.getElementById('app')! });
